"""gridledger.market"""
