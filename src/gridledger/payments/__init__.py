"""gridledger.payments"""
