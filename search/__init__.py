"""Evolutionary search over cluster control policies: experiments, genomes, fitness, the one
search loop (GA, NSGA-II, GP), Ray fan-out, reports and champion replay.  The notebook API is
:mod:`blis_evo.api` (``evolve``, ``evaluate``)."""
