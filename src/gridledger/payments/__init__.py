"""gridledger.payments: Chaum e-coins for both markets (seed 003, after GNU Taler).

Modules, in the order a coin travels:

* :mod:`units` - ``Money`` and the powers-of-two denominations;
* :mod:`coins` - denomination keys (one RFC 9474 key each), coins, their checks;
* :mod:`invoice` - the invoice convention other contracts publish, payment records;
* :mod:`messages` - the wire types of every payments transaction and interactive message;
* :mod:`wallet` - a household's coins: blind withdrawal, coin choice, payment, refresh;
* :mod:`mint` - the DSO's mint: identified withdrawal, reissue, deposit, bills;
* :mod:`contract` - the on-chain spent-coin registry, redeems, credits and bills;
* :mod:`plugin` - :data:`plugin.PLUGIN`, which builds the contract from the genesis.
"""
