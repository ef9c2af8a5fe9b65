"""gridledger.ledger"""
