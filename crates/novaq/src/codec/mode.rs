//! Compression modes: which codec and how many bits.

use core::fmt;

/// How weight matrices are encoded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// Additive vector quantization: `books` codes of 8 bits per `dim` weights.
    Additive { books: usize, dim: usize },
    /// Group-wise symmetric integers of `bits` (4 or 8) with one f16 scale per group.
    Scalar { bits: u32 },
    /// Group-wise affine 4-bit integers (`q4a`: groups of 32; `q4a-64`): each group on its own
    /// min-to-max grid, read by the SIMD integer kernel.
    Affine { group: usize },
}

/// Vector lengths tried, in order of preference, when a bit rate is asked for.
const DIMS: [usize; 3] = [8, 16, 4];

/// Codebooks an additive layout may have.
const BOOKS: core::ops::RangeInclusive<usize> = 1..=8;

impl Mode {
    /// Parses a mode name (`2bit`, `3bit`, `4bit`, `q4`, `q8`, or `aq-BxD` for B books over
    /// vectors of D weights, as [`Mode`]'s `Display` writes it); `bits` overrides the bit rate
    /// of the additive modes.
    pub fn parse(name: &str, bits: Option<f64>) -> Result<Self, String> {
        let mode = match name {
            "2bit" => Self::Additive { books: 2, dim: 8 },
            "3bit" => Self::Additive { books: 3, dim: 8 },
            "4bit" => Self::Additive { books: 2, dim: 4 },
            "q4" => Self::Scalar { bits: 4 },
            "q8" => Self::Scalar { bits: 8 },
            "q4a" => Self::Affine { group: 32 },
            "q4a-64" => Self::Affine { group: 64 },
            other => match other.strip_prefix("aq-") {
                Some(layout) => Self::parse_additive_layout(layout)?,
                None => {
                    return Err(format!(
                        "unknown mode {other:?}: expected 2bit, 3bit, 4bit, q4, q4a, q4a-64, q8 or \
                         aq-BxD (B books of 256 entries over vectors of D weights, e.g. aq-3x4)"
                    ));
                }
            },
        };
        match (mode, bits) {
            (_, None) => Ok(mode),
            (Self::Scalar { .. } | Self::Affine { .. }, Some(_)) => Err(format!(
                "--bits applies to 2bit, 3bit and 4bit modes, not {name}"
            )),
            (Self::Additive { .. }, Some(bits)) => Self::additive_for_bits(bits),
        }
    }

    /// `BxD` of an `aq-BxD` name: 1 to 8 books over vectors of 4, 8 or 16 weights.
    fn parse_additive_layout(layout: &str) -> Result<Self, String> {
        let parsed = layout
            .split_once('x')
            .and_then(|(books, dim)| Some((books.parse().ok()?, dim.parse().ok()?)));
        match parsed {
            Some((books, dim)) if BOOKS.contains(&books) && DIMS.contains(&dim) => {
                Ok(Self::Additive { books, dim })
            }
            _ => Err(format!(
                "mode \"aq-{layout}\": expected aq-BxD with B books from 1 to 8 and a vector \
                 length D of 4, 8 or 16, e.g. aq-3x4"
            )),
        }
    }

    /// The additive layout spending `bits` per weight on codes: `books · 8 / dim = bits`.
    pub fn additive_for_bits(bits: f64) -> Result<Self, String> {
        for dim in DIMS {
            let books = bits * dim as f64 / 8.0;
            // Negative or NaN rates saturate to 0 books, outside BOOKS.
            let whole = books.round() as usize;
            if (books - books.round()).abs() < 1e-9 && BOOKS.contains(&whole) {
                return Ok(Self::Additive { books: whole, dim });
            }
        }
        Err(format!(
            "--bits {bits} is not reachable: bits × dim / 8 must be a whole number of codebooks \
             (1 to 8) for a vector length of 4, 8 or 16 (e.g. 1, 1.5, 2, 2.5, 3, 4)"
        ))
    }

    /// Bits per weight spent on codes or integer values alone.
    pub fn code_bits(&self) -> f64 {
        match *self {
            Self::Additive { books, dim } => 8.0 * books as f64 / dim as f64,
            Self::Scalar { bits } => bits as f64,
            Self::Affine { .. } => 4.0,
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Additive { books: 2, dim: 8 } => f.write_str("2bit"),
            Self::Additive { books: 3, dim: 8 } => f.write_str("3bit"),
            Self::Additive { books: 2, dim: 4 } => f.write_str("4bit"),
            Self::Additive { books, dim } => write!(f, "aq-{books}x{dim}"),
            Self::Scalar { bits } => write!(f, "q{bits}"),
            Self::Affine { group: 32 } => f.write_str("q4a"),
            Self::Affine { group } => write!(f, "q4a-{group}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_and_custom_rates() {
        assert_eq!(Mode::parse("2bit", None).unwrap().code_bits(), 2.0);
        assert_eq!(Mode::parse("4bit", None).unwrap().code_bits(), 4.0);
        assert_eq!(
            Mode::parse("2bit", Some(2.5)).unwrap(),
            Mode::Additive { books: 5, dim: 16 }
        );
        assert!(Mode::parse("q8", Some(3.0)).is_err());
        for (name, group) in [("q4a", 32), ("q4a-64", 64)] {
            assert_eq!(Mode::parse(name, None), Ok(Mode::Affine { group }));
            assert_eq!(Mode::Affine { group }.to_string(), name);
        }
        assert!(Mode::parse("q4a", Some(4.0)).is_err());
        assert!(Mode::parse("7bit", None).is_err());
        assert!(Mode::additive_for_bits(2.3).is_err());
    }

    #[test]
    fn additive_layouts_parse_as_they_display() {
        for mode in [
            Mode::Additive { books: 3, dim: 4 },
            Mode::Additive { books: 1, dim: 16 },
            Mode::Additive { books: 8, dim: 8 },
        ] {
            assert_eq!(Mode::parse(&mode.to_string(), None), Ok(mode));
        }
        assert_eq!(
            Mode::parse("aq-2x4", None),
            Ok(Mode::Additive { books: 2, dim: 4 })
        );
        for bad in [
            "aq-", "aq-3", "aq-0x4", "aq-9x8", "aq-3x5", "aq-x4", "aq-3x4x2",
        ] {
            assert!(Mode::parse(bad, None).is_err(), "{bad} parsed");
        }
    }
}
