//! Weight codecs: additive vector quantization and the scalar baselines.
