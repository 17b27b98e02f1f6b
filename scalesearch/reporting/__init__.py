"""`scalesearch report`: a finished run read back from its study storage, as tables and figures.

    load.py     the run: best.json for how it was made, the Optuna storage for every number
    tables.py   Markdown, LaTeX (booktabs), HTML, CSV and JSON renderings of one loaded run
    figures.py  matplotlib figures: accuracy vs FLOPs, the α–β plane, and expand's family curve
"""
