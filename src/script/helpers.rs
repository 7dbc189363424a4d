//! Pure helpers for strategies: `chunks`, `split_percent`, `by_tag`,
//! `any_failed`, `all_succeeded`, `first_unsuccessful`.

use rhai::{Array, Dynamic, EvalAltResult, INT, Map};

use super::env::ScriptEnv;

/// Splits `items` into arrays of `size` (the last may be shorter).
pub fn chunks(items: Array, size: INT) -> Result<Array, Box<EvalAltResult>> {
    if size < 1 {
        return Err(format!("chunks(envs, n): n must be at least 1, got {size}").into());
    }
    Ok(items
        .chunks(size as usize)
        .map(|chunk| Dynamic::from_array(chunk.to_vec()))
        .collect())
}

/// A canary percentage outside (0, 100].
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error("canary percentage must be greater than 0 and at most 100, got {percent}")]
pub(crate) struct CanaryPercentError {
    percent: f64,
}

/// How many of `total` a percentage selects: round(total × percent / 100),
/// at least one, at most all. `percent` must be in (0, 100].
pub fn canary_count(total: usize, percent: f64) -> Result<usize, CanaryPercentError> {
    if !(percent > 0.0 && percent <= 100.0) {
        return Err(CanaryPercentError { percent });
    }
    if total == 0 {
        return Ok(0);
    }
    // The small epsilon keeps 2.5 from becoming 2.4999… and rounding down.
    let exact = total as f64 * percent / 100.0;
    Ok(((exact + 1e-9).round() as usize).clamp(1, total))
}

/// `[first, rest]`: the first `canary_count` items, then the others.
pub fn split_percent(items: Array, percent: f64) -> Result<Array, Box<EvalAltResult>> {
    let count = canary_count(items.len(), percent).map_err(|e| format!("split_percent: {e}"))?;
    let (first, rest) = items.split_at(count);
    Ok(vec![
        Dynamic::from_array(first.to_vec()),
        Dynamic::from_array(rest.to_vec()),
    ])
}

/// `split_percent` with an integer percentage.
pub fn split_percent_int(items: Array, percent: INT) -> Result<Array, Box<EvalAltResult>> {
    split_percent(items, percent as f64)
}

/// The environments carrying `tag`.
pub fn by_tag(items: Array, tag: &str) -> Result<Array, Box<EvalAltResult>> {
    let mut out = Array::new();
    for item in items {
        let env = item
            .clone()
            .try_cast::<ScriptEnv>()
            .ok_or_else(|| format!("by_tag(envs, tag) takes environments, got {}", item.type_name()))?;
        if env.tags.iter().any(|t| t == tag) {
            out.push(item);
        }
    }
    Ok(out)
}

/// True when any result map failed: status `failed`/`rolled_back`, an
/// unhealthy health map, or a verification with `ok: false`.
pub fn any_failed(results: Array) -> bool {
    results.iter().any(|item| {
        let Some(map) = item.read_lock::<Map>() else {
            return false;
        };
        let status_failed = map
            .get("status")
            .and_then(|s| s.clone().into_string().ok())
            .is_some_and(|s| s == "failed" || s == "rolled_back");
        let flag_false = |key: &str| map.get(key).and_then(|v| v.as_bool().ok()) == Some(false);
        status_failed || flag_false("is_healthy") || flag_false("ok")
    })
}

/// Whether a deployment result's map succeeded: `success`, or SKIPPED with
/// nothing to do but migrations its server is too old for (`passed_over`):
/// up to date for its server.
fn succeeded(map: &Map) -> bool {
    let status = map.get("status").and_then(|s| s.clone().into_string().ok());
    let up_to_date = || {
        map.get("passed_over")
            .and_then(|p| p.clone().into_array().ok())
            .is_some_and(|p| !p.is_empty())
    };
    match status.as_deref() {
        Some("success") => true,
        Some("skipped") => up_to_date(),
        _ => false,
    }
}

/// True when every result succeeded: deployment results are all `success`
/// (SKIPPED counts as not succeeded, unless only migrations its server is
/// too old for were left), health maps healthy, verifications ok.
/// Promotion pipelines stop on `!all_succeeded(results)`.
pub fn all_succeeded(results: Array) -> bool {
    results.iter().all(|item| {
        let Some(map) = item.read_lock::<Map>() else {
            return false;
        };
        if map.contains_key("status") {
            return succeeded(&map);
        }
        let flag = |key: &str| map.get(key).and_then(|v| v.as_bool().ok());
        flag("is_healthy").or(flag("ok")) == Some(true)
    })
}

/// The first result that did not succeed, as `'name' ended STATUS`, for
/// messages (its reason is in its own result).
pub fn first_unsuccessful(results: Array) -> String {
    results
        .iter()
        .find_map(|item| {
            let map = item.read_lock::<Map>()?;
            let text = |key: &str| map.get(key).and_then(|v| v.clone().into_string().ok());
            let status = text("status")?;
            (!succeeded(&map)).then(|| {
                let name = text("environment").unwrap_or_default();
                format!("'{name}' ended {}", status.to_uppercase())
            })
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canary_count_rounds_with_a_minimum_of_one() {
        assert_eq!(canary_count(5, 20.0), Ok(1));
        assert_eq!(canary_count(3, 33.0), Ok(1));
        assert_eq!(canary_count(5, 10.0), Ok(1)); // 0.5 rounds up
        assert_eq!(canary_count(10, 25.0), Ok(3)); // 2.5 rounds up
        assert_eq!(canary_count(10, 24.0), Ok(2));
        assert_eq!(canary_count(100, 1.0), Ok(1));
        assert_eq!(canary_count(1000, 0.01), Ok(1));
        assert_eq!(canary_count(4, 100.0), Ok(4));
        assert!(canary_count(4, 0.0).is_err());
        assert!(canary_count(4, 100.5).is_err());
        assert!(canary_count(4, -3.0).is_err());
        assert!(canary_count(4, f64::NAN).is_err());
    }

    #[test]
    fn chunks_split_evenly_with_a_short_tail() {
        let items: Array = (1..=5).map(|i: INT| Dynamic::from(i)).collect();
        let parts = chunks(items.clone(), 2).unwrap();
        let sizes: Vec<usize> = parts.iter().map(|p| p.clone().into_array().unwrap().len()).collect();
        assert_eq!(sizes, [2, 2, 1]);
        assert!(chunks(items, 0).is_err());
    }
}
