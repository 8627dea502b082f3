//! The task graph: phases for display and scheduling order, and cycles as
//! people want to see them (`a -> b -> a`).

use std::collections::HashMap;

/// Groups tasks into phases (Kahn layering), keeping file order inside a phase.
/// Returns the first cycle found if the graph has one. Unknown needs are ignored
/// (validation reports them separately).
pub fn phases<'a>(tasks: &[(&'a str, Vec<&'a str>)]) -> Result<Vec<Vec<&'a str>>, Vec<&'a str>> {
    let index: HashMap<&str, usize> = tasks.iter().enumerate().map(|(i, t)| (t.0, i)).collect();
    let mut level: Vec<Option<usize>> = vec![None; tasks.len()];
    let mut remaining = tasks.len();
    let mut current = 0;
    let mut out: Vec<Vec<&str>> = Vec::new();
    while remaining > 0 {
        let mut phase = Vec::new();
        for (i, (id, needs)) in tasks.iter().enumerate() {
            if level[i].is_some() {
                continue;
            }
            let ready = needs.iter().all(|n| match index.get(n) {
                Some(&j) => matches!(level[j], Some(l) if l < current),
                None => true,
            });
            if ready {
                phase.push((i, *id));
            }
        }
        if phase.is_empty() {
            return Err(find_cycle(tasks, &index, &level));
        }
        for (i, _) in &phase {
            level[*i] = Some(current);
        }
        remaining -= phase.len();
        out.push(phase.into_iter().map(|(_, id)| id).collect());
        current += 1;
    }
    Ok(out)
}

fn find_cycle<'a>(
    tasks: &[(&'a str, Vec<&'a str>)],
    index: &HashMap<&str, usize>,
    placed: &[Option<usize>],
) -> Vec<&'a str> {
    // Every unplaced task is on a cycle or waits for one; walk needs until a task repeats.
    let Some(start) = placed.iter().position(Option::is_none) else {
        return Vec::new();
    };
    let mut path: Vec<usize> = vec![start];
    let mut cur = start;
    loop {
        let next = tasks[cur]
            .1
            .iter()
            .filter_map(|n| index.get(n).copied())
            .find(|&j| placed[j].is_none());
        let Some(next) = next else {
            return Vec::new();
        };
        if let Some(pos) = path.iter().position(|&p| p == next) {
            // Needs point upstream; print the cycle in the order work flows.
            let mut cycle: Vec<&str> = path[pos..].iter().map(|&i| tasks[i].0).collect();
            cycle.reverse();
            cycle.push(cycle[0]);
            return cycle;
        }
        path.push(next);
        cur = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_a_pipeline() {
        let t = vec![
            ("a", vec![]),
            ("b", vec![]),
            ("c", vec!["a", "b"]),
            ("d", vec!["c"]),
        ];
        assert_eq!(
            phases(&t).unwrap(),
            vec![vec!["a", "b"], vec!["c"], vec!["d"]]
        );
    }

    #[test]
    fn reports_the_cycle() {
        let t = vec![
            ("a", vec!["c"]),
            ("b", vec!["a"]),
            ("c", vec!["b"]),
            ("d", vec![]),
        ];
        let cycle = phases(&t).unwrap_err();
        assert_eq!(cycle.first(), cycle.last());
        assert_eq!(cycle.len(), 4);
        for id in ["a", "b", "c"] {
            assert!(cycle.contains(&id));
        }
    }

    #[test]
    fn self_loop_is_a_cycle() {
        let t = vec![("a", vec!["a"])];
        assert_eq!(phases(&t).unwrap_err(), vec!["a", "a"]);
    }
}
