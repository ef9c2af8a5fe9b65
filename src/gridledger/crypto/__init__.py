"""gridledger.crypto"""
