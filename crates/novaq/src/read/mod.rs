//! Readers for model files: GGUF and safetensors, dequantized to f32 on read.
