//! Medians, percentiles and the formatting of figures.

/// The median of `values` (the mean of the two middle ones for an even count); `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    })
}

/// The `p`th percentile (0–100) by the nearest-rank method; `None` when empty.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    Some(v[rank.clamp(1, v.len()) - 1])
}

/// Milliseconds from nanoseconds, printed with a precision that suits the size.
pub fn ms(ns: f64) -> String {
    let ms = ns / 1e6;
    if ms >= 100.0 {
        format!("{ms:.0} ms")
    } else if ms >= 10.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.2} ms")
    }
}

/// An optional duration in nanoseconds as milliseconds, or a dash.
pub fn opt_ms(ns: Option<f64>) -> String {
    ns.map_or_else(|| "–".to_owned(), ms)
}

/// A ratio such as `2.34×`, or a dash.
pub fn ratio(r: Option<f64>) -> String {
    r.map_or_else(|| "–".to_owned(), |r| format!("{r:.2}×"))
}

/// Kibibytes, with a thousands-friendly precision.
pub fn kib(k: f64) -> String {
    if k >= 10240.0 {
        format!("{:.1} MiB", k / 1024.0)
    } else {
        format!("{k:.0} kB")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn median_ignores_values_that_are_not_numbers() {
        assert_eq!(median(&[f64::NAN, 5.0]), Some(5.0));
    }

    #[test]
    fn p99_of_fifty_is_the_largest_but_none() {
        let v: Vec<f64> = (1..=50).map(f64::from).collect();
        assert_eq!(percentile(&v, 99.0), Some(50.0));
        assert_eq!(percentile(&v, 50.0), Some(25.0));
        assert_eq!(percentile(&v, 0.0), Some(1.0));
    }

    #[test]
    fn durations_are_printed_with_suitable_precision() {
        assert_eq!(ms(1_234_000.0), "1.23 ms");
        assert_eq!(ms(12_340_000.0), "12.3 ms");
        assert_eq!(ms(325_400_000.0), "325 ms");
        assert_eq!(ratio(Some(2.345)), "2.35×");
        assert_eq!(ratio(None), "–");
    }
}
