"""One module per defense of chapter 7, each giving the registry (:mod:`..registry`) its
``build(task, tm, profile, **options) -> Defended`` (the defense of a task's zoo model ``tm``
as the attackers meet it, trained through its cache when absent), ``identity(task, tm,
profile, **options) -> (model_key, extra)`` (what :func:`build` would put into the memo keys,
computed without training or loading anything), and, where it adds work, ``cost`` (the
forward-equivalents it adds to the common evaluation) and a stage-0 ``train`` step.

- :mod:`.none`: the undefended model (the reference row);
- :mod:`.jpeg`: JPEG compression (the real codec; BPDA and kornia's differentiable codec for
  the adaptive attacker);
- :mod:`.adversarial`: adversarial training (AdversarialMed's recipe, PGD, fast FGSM);
- :mod:`.vae`: VAE denoising (EOT through the sampled VAE for the adaptive attacker);
- :mod:`.retraining`: Hirano et al.'s UAP retraining.
"""
