//! The OHMS model format: CBOR manifest, shard table and shard hashing.
