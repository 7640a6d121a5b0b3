//! Port specifications: `1-1024,8080,top100`, `-` (all ports).

use crate::Error;

/// Common service ports scanned by `top100` (project-chosen list of
/// well-known service ports, ascending).
pub const TOP100: [u16; 100] = [
    7, 9, 13, 21, 22, 23, 25, 26, 37, 53, 79, 80, 81, 88, 106, 110, 111, 113, 119, 135, 139, 143,
    144, 179, 199, 389, 427, 443, 444, 445, 465, 513, 514, 515, 543, 544, 548, 554, 587, 631, 646,
    873, 990, 993, 995, 1025, 1026, 1027, 1028, 1029, 1080, 1110, 1433, 1521, 1720, 1723, 1755,
    1883, 1900, 2000, 2001, 2049, 2121, 2717, 3000, 3128, 3306, 3389, 3986, 4899, 5000, 5009, 5051,
    5060, 5101, 5190, 5357, 5432, 5631, 5666, 5800, 5900, 6000, 6001, 6379, 6646, 7070, 8000, 8008,
    8009, 8080, 8081, 8443, 8888, 9100, 9200, 9999, 10000, 11211, 27017,
];

/// Parses a comma-separated list of ports, `a-b` ranges (`-b` from 1,
/// `a-` to 65535, `-` all), and `top100`. Returns sorted, deduplicated
/// ports; port 0 and empty specs are errors.
pub fn parse(spec: &str) -> Result<Vec<u16>, Error> {
    let mut seen = vec![false; 65536];
    for item in spec.split(',') {
        let item = item.trim();
        if item.is_empty() {
            return Err(Error::PortSpec(format!("empty item in {spec:?}")));
        }
        if item.eq_ignore_ascii_case("top100") {
            for p in TOP100 {
                seen[usize::from(p)] = true;
            }
            continue;
        }
        let (lo, hi) = match item.split_once('-') {
            Some((a, b)) => (
                if a.is_empty() { 1 } else { port(a)? },
                if b.is_empty() { 65535 } else { port(b)? },
            ),
            None => {
                let p = port(item)?;
                (p, p)
            }
        };
        if lo > hi {
            return Err(Error::PortSpec(format!("range {item:?} is reversed")));
        }
        for p in lo..=hi {
            seen[usize::from(p)] = true;
        }
    }
    Ok((1..=65535u16).filter(|p| seen[usize::from(*p)]).collect())
}

fn port(s: &str) -> Result<u16, Error> {
    match s.parse::<u16>() {
        Ok(0) | Err(_) => Err(Error::PortSpec(format!(
            "{s:?} is not a port number (1-65535)"
        ))),
        Ok(p) => Ok(p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_lists_and_names() {
        assert_eq!(parse("22,80-82,80").unwrap(), vec![22, 80, 81, 82]);
        assert_eq!(parse("-").unwrap().len(), 65535);
        assert_eq!(
            parse("65530-").unwrap(),
            (65530..=65535).collect::<Vec<_>>()
        );
        let t = parse("top100,1").unwrap();
        assert_eq!(t.len(), 101);
        assert!(t.contains(&6379) && t.contains(&443));
    }

    #[test]
    fn bad_specs_are_errors() {
        for bad in ["", "0", "70000", "10-5", "a", "1,,2", "1-2-3", "-0"] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
