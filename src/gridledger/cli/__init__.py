"""The ``gridledger`` command line: the top layer, a client of every layer below it."""
