//! The full-size KV budget a run scales its scenarios against: a size the user gives, or
//! whatever the adapter can really hold, measured by the memory probe.

use std::str::FromStr;

use super::BYTES_PER_GB;

/// Where a run's full-size KV budget comes from (`pagekv run --budget`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Budget {
    /// A size in GiB, e.g. another card's memory.
    Gib(f64),
    /// The usable memory the probe measures on the adapter that runs the suite.
    Device,
}

impl Budget {
    /// Bytes of a size in GiB, or `None` when it is not a positive, finite size below a
    /// million GiB.
    pub fn gib_bytes(gib: f64) -> Option<u64> {
        (gib.is_finite() && gib > 0.0 && gib < 1e6).then_some((gib * BYTES_PER_GB as f64) as u64)
    }
}

impl FromStr for Budget {
    type Err = String;

    /// `device` (any case) or a positive number of GiB.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("device") {
            return Ok(Budget::Device);
        }
        match text.parse::<f64>() {
            Ok(gib) if Budget::gib_bytes(gib).is_some() => Ok(Budget::Gib(gib)),
            _ => Err(format!(
                "'{text}' is not a budget; give a positive size in GiB like 24 or 80, or \
                 `device` to use the memory the adapter really has"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_device_parse_and_the_rest_is_refused() {
        assert_eq!("24".parse(), Ok(Budget::Gib(24.0)));
        assert_eq!(" 0.5 ".parse(), Ok(Budget::Gib(0.5)));
        assert_eq!("device".parse(), Ok(Budget::Device));
        assert_eq!("DEVICE".parse(), Ok(Budget::Device));
        for bad in ["bogus", "-1", "0", "", "inf", "NaN", "1e7", "24GiB"] {
            let err = bad.parse::<Budget>().unwrap_err();
            assert!(err.contains("is not a budget"), "{bad}: {err}");
            assert!(err.contains("device"), "{bad}: {err}");
        }
    }

    #[test]
    fn gib_bytes_is_binary_gigabytes() {
        assert_eq!(Budget::gib_bytes(1.0), Some(BYTES_PER_GB));
        assert_eq!(Budget::gib_bytes(0.5), Some(BYTES_PER_GB / 2));
        assert_eq!(Budget::gib_bytes(-1.0), None);
    }
}
