"""Evolutionary search over cluster control policies: experiments, genomes, fitness, the GA /
NSGA-II loop, Ray fan-out, reports and champion replay.  The notebook API is
:mod:`blis_evo.api` (``evolve``, ``evaluate``)."""
