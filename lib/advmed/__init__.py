"""advmed: adversarial attacks and defenses for medical image classifiers.

Conventions (see DESIGN.md): pixels are float tensors in [0, 1] outside the model,
normalisation is the model's first layer, models return logits, every eps is in
[0, 1] pixel units.
"""
__version__ = "0.1.0"
