"""Seed 002's CBSG, built soundly: signcrypted multidimensional meter reports.

A smart meter signcrypts one report per period to several receivers (control
center, grid operator, equipment supplier), each getting only the dimensions a
published schema gives it. Accounting nodes verify whole batches with one
weighted multi-scalar multiplication in G1 (the signature is a certificateless
Schnorr signature; no pairing), name and refuse bad reports by bisection,
and record the ciphertexts grouped per receiver (:mod:`.contract`, exposed as
:data:`.plugin.PLUGIN`). Receivers decrypt their part and act: the grid operator's feedback contract
(:mod:`.feedback`), the control center's theft detection (:mod:`.theft`), the
equipment supplier's states and fault reports (:mod:`.equipment`).

Modules, low to high: :mod:`.curve` (BLS12-381 through a maintained binding),
:mod:`.keys`, :mod:`.schema`, :mod:`.signcrypt`, :mod:`.verify`,
:mod:`.decrypt`, then the receivers and the contract. :mod:`.paper` reproduces
the printed equations only to measure their cost; nothing accepts a report
with it.
"""
