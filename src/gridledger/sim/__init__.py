"""gridledger.sim"""
