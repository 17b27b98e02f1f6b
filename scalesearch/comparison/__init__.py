"""`scalesearch compare`: compound scaling against depth-, width- and resolution-only at one measured cost.

    arms      the four arms (and the unscaled proxy), each budget-matched
    study     the arms x seeds as work items of a study: its strategy, experiment and files
    verdicts  paired tests per arm, compare.json, compare.csv and the figure

The study module registers the `compare` strategy with the engine; it is imported where a comparison runs.
"""
