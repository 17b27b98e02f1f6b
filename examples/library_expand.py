"""Use scalesearch as a library: expand coefficients into a family and print a Markdown table.

    python examples/library_expand.py
"""

from scalesearch.cost import measure_cost
from scalesearch.expansion import expand_family, to_markdown
from scalesearch.scaling import Coefficients, parse_phi

# Coefficients you found (or the paper's); φ as the CLI would take it.
coefficients = Coefficients(alpha=1.2, beta=1.1, gamma=1.15)
rows = expand_family(coefficients, parse_phi("0..3"), family="efficientnet", num_classes=100)
print(to_markdown(rows, "EfficientNet family for 100 classes"))

# One configuration's cost, multiply-adds as in the paper.
cost = measure_cost("efficientnet", width_mult=1.0, depth_mult=1.0, resolution=224, num_classes=1000)
print(f"B0: {cost.params:,} parameters, {cost.flops / 1e9:.3f} G multiply-adds")
