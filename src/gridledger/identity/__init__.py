"""gridledger.identity: CA, registration manager, pseudonym issuer (MM), trace center.

Modules: ``ca`` (X.509 with attribute sets, ``verify_member``, typed parsing),
``ca_register`` (the CA's register on disk, crash-safe), ``admission`` (issuing
members, signed revocations), ``registration`` (user ↔ RM mutual authentication and
cut-and-choose fair blind signature), ``pseudonym_issuer`` (the MM's pseudonym
certificates in shuffled batches), ``trace_center`` (threshold tracing, DKG or dealer,
audit reconstruction), ``sweep`` (after a trace, the traced identity's other open
pseudonyms by plaintext-equality tests), ``schedule`` (when a user sends its MM
request), ``contracts`` (the on-chain identity contract), ``verification`` (checking a
pseudonym against chain state: the market's check), ``genesis`` (the genesis section),
``plugin`` (``PLUGIN``: the contract plugin), ``client`` (roles acting through a
consortium client), ``tags``, ``messages``, ``freshness``, ``errors``.
See ``docs/protocols/identity.md``.
"""
