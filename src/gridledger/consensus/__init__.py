"""gridledger.consensus"""
