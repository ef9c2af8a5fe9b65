"""gridledger.identity"""
