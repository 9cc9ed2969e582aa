"""Defenses: each wraps a model into a model (pixels in [0, 1] in, logits out), so that
every attack of :mod:`advmed.attacks` runs on the defended model unchanged and an
adaptive attacker can be given the defense itself (Athalye, Carlini & Wagner 2018;
Tramer et al. 2020). Training-time defenses (adversarial training) live in
:mod:`advmed.train`.
"""
