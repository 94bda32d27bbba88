//! Compression quality reports: bits per weight, ratios and errors.
