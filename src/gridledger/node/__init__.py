"""gridledger.node"""
