"""The reproduction of the paper, built on the ``grokking`` library: the claims and their measures,
verdicts and replicates, the authors' code as a reference, figures and the baselines study.

It imports the library and is never imported by it: ``pip install grokking`` (the library) needs
none of this; the repository's scripts and ``make figures`` use it.
"""
