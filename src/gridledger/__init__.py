"""gridledger: private peer-to-peer electricity trading over a consortium blockchain."""

__version__ = "0.1.0"
