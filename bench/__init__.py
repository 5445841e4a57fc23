"""`pishkhan bench`: the pipeline measured against ceilings taken in the same run, as ratios."""
