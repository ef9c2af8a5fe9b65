"""gridledger.identity: CA, registration manager, market manager, trace center.

Modules: ``ca`` (X.509 with attribute sets, ``verify_member``), ``registration``
(user ↔ RM mutual authentication and cut-and-choose fair blind signature),
``market_manager`` (pseudonym certificates in shuffled batches), ``trace_center``
(threshold tracing, DKG or dealer, audit reconstruction), ``sweep`` (after a
trace, the traced identity's other open pseudonyms by plaintext-equality tests),
``schedule`` (when a user sends its MM request), ``contracts`` (the on-chain
identity contract), ``tags``, ``messages``, ``freshness``, ``errors``.
See ``docs/protocols/identity.md``.
"""
