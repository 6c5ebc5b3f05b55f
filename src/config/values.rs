//! Config value types with human syntax: byte sizes (`"100MiB"`) and durations (`"250ms"`).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

/// A byte count written as an integer or a string with a unit: `1048576`, `"64KiB"`, `"100MiB"`,
/// `"1GB"` (decimal units are powers of 1000, binary units powers of 1024).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub const fn kib(n: u64) -> ByteSize {
        ByteSize(n << 10)
    }
    pub const fn mib(n: u64) -> ByteSize {
        ByteSize(n << 20)
    }
    pub const fn gib(n: u64) -> ByteSize {
        ByteSize(n << 30)
    }
    pub fn as_u64(self) -> u64 {
        self.0
    }
    pub fn as_usize(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }
}

impl FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: u64 = num.parse().map_err(|_| {
            format!("invalid size `{s}` (expected e.g. 4096, \"64KiB\", \"100MiB\")")
        })?;
        let mult: u64 = match unit.trim() {
            "" | "B" => 1,
            "K" | "KB" | "kB" => 1000,
            "KiB" => 1 << 10,
            "M" | "MB" => 1_000_000,
            "MiB" => 1 << 20,
            "G" | "GB" => 1_000_000_000,
            "GiB" => 1 << 30,
            "T" | "TB" => 1_000_000_000_000,
            "TiB" => 1 << 40,
            other => {
                return Err(format!(
                    "invalid size unit `{other}` in `{s}` (use B, KB, KiB, MB, MiB, GB, GiB, TB, TiB)"
                ));
            }
        };
        n.checked_mul(mult)
            .map(ByteSize)
            .ok_or_else(|| format!("size `{s}` is too large"))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}B", self.0)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a byte size such as 4096 or \"100MiB\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom("a size cannot be negative"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// A duration written as a string with a unit: `"250ms"`, `"5s"`, `"2m"`, `"1h 30m"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    pub const fn millis(ms: u64) -> HumanDuration {
        HumanDuration(Duration::from_millis(ms))
    }
    pub const fn secs(s: u64) -> HumanDuration {
        HumanDuration(Duration::from_secs(s))
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s)
            .map(HumanDuration)
            .map_err(|e| {
                de::Error::custom(format!(
                    "invalid duration `{s}`: {e} (expected e.g. \"250ms\", \"5s\")"
                ))
            })
    }
}

/// Deserializes a file mode written as an octal string (`"0660"`) or an integer.
pub fn octal_mode<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = u32;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a file mode in octal, such as \"0660\"")
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<u32, E> {
            u32::try_from(v)
                .ok()
                .filter(|m| *m <= 0o7777)
                .ok_or_else(|| E::custom("a file mode is at most 0o7777"))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<u32, E> {
            u32::from_str_radix(v.trim_start_matches("0o"), 8)
                .ok()
                .filter(|m| *m <= 0o7777)
                .ok_or_else(|| {
                    E::custom(format!(
                        "invalid file mode `{v}` (expected octal, e.g. \"0660\")"
                    ))
                })
        }
    }
    d.deserialize_any(V)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!("100MiB".parse::<ByteSize>(), Ok(ByteSize(100 << 20)));
        assert_eq!("4096".parse::<ByteSize>(), Ok(ByteSize(4096)));
        assert_eq!("1 GB".parse::<ByteSize>(), Ok(ByteSize(1_000_000_000)));
        assert!("12 parsecs".parse::<ByteSize>().is_err());
        assert!("99999999999999TiB".parse::<ByteSize>().is_err());
        assert!("".parse::<ByteSize>().is_err());
    }
}
