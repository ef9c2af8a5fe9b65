"""gridledger.aggregation"""
