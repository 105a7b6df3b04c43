//! Lower-case hexadecimal, the one encoder of the crate (cache file names, digests in the
//! charm's state, token fingerprints). `format!("{:02x}")` per byte allocates a String per byte;
//! this writes into one buffer.

/// `bytes` as lower-case hexadecimal, two digits per byte.
pub fn encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_format_02x() {
        let all: Vec<u8> = (0..=255).collect();
        let expected: String = all.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(encode(&all), expected);
        assert_eq!(encode(&[]), "");
        assert_eq!(encode(&[0x0a, 0xff]), "0aff");
    }
}
