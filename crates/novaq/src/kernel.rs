//! Decoding and matrix-vector products on compressed weights, built for wasm32.
