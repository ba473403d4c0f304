//! Content models compiled to deterministic automata over the child elements.
//!
//! A particle tree becomes a Thompson NFA (occurrence ranges unrolled) and then, by subset
//! construction, a DFA whose edges are labelled with [`Leaf`]s. The schemas obey Unique Particle
//! Attribution, so at most one label of a state matches a given child, and matching a document is
//! one table step per child. The DFA also answers what the error messages need: which elements a
//! state expects, and the fewest elements that are missing to get on.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

use crate::model::{Leaf, Particle, Term};

/// Bounds that keep a pathological schema from exhausting memory at compile time; the embedded
/// schemas are far below them.
const MAX_COPIES: u32 = 64;
const MAX_NFA_STATES: usize = 100_000;
const MAX_DFA_STATES: usize = 10_000;

pub(crate) struct Automaton {
    /// State 0 is the start.
    states: Vec<State>,
}

struct State {
    accepting: bool,
    /// Element declarations before wildcards, so a declaration wins where both could match.
    edges: Vec<(Leaf, u32)>,
}

/// The state an automaton is in while it reads the children of one element.
pub(crate) type StateId = u32;

impl Automaton {
    pub const START: StateId = 0;

    pub fn compile(particle: &Particle) -> Result<Automaton, String> {
        let mut nfa = Nfa::default();
        let start = nfa.state()?;
        let end = nfa.particle(particle, start)?;
        nfa.determinize(start, end)
    }

    /// The edge taken from `state` by a child that `matches` accepts.
    pub fn step(
        &self,
        state: StateId,
        mut matches: impl FnMut(&Leaf) -> bool,
    ) -> Option<(&Leaf, StateId)> {
        self.states[state as usize]
            .edges
            .iter()
            .find(|(leaf, _)| matches(leaf))
            .map(|(leaf, to)| (leaf, *to))
    }

    pub fn accepts(&self, state: StateId) -> bool {
        self.states[state as usize].accepting
    }

    pub fn expected(&self, state: StateId) -> impl Iterator<Item = &Leaf> {
        self.states[state as usize]
            .edges
            .iter()
            .map(|(leaf, _)| leaf)
    }

    /// The fewest children that lead from `state` to a state where `goal` holds, and that state.
    pub fn shortest_path(
        &self,
        state: StateId,
        goal: impl Fn(StateId) -> bool,
    ) -> Option<(Vec<&Leaf>, StateId)> {
        let mut came_from: FxHashMap<StateId, (StateId, &Leaf)> = FxHashMap::default();
        let mut queue = VecDeque::from([state]);
        while let Some(at) = queue.pop_front() {
            if goal(at) {
                let mut path = Vec::new();
                let mut cursor = at;
                while let Some(&(previous, leaf)) = came_from.get(&cursor) {
                    path.push(leaf);
                    cursor = previous;
                }
                path.reverse();
                return Some((path, at));
            }
            for (leaf, to) in &self.states[at as usize].edges {
                if *to != state && !came_from.contains_key(to) {
                    came_from.insert(*to, (at, leaf));
                    queue.push_back(*to);
                }
            }
        }
        None
    }
}

/// A Thompson NFA: each state has ε-edges and at most one labelled edge.
#[derive(Default)]
struct Nfa {
    epsilon: Vec<Vec<u32>>,
    labelled: Vec<Option<(Leaf, u32)>>,
}

impl Nfa {
    fn state(&mut self) -> Result<u32, String> {
        if self.epsilon.len() >= MAX_NFA_STATES {
            return Err("content model too large".into());
        }
        self.epsilon.push(Vec::new());
        self.labelled.push(None);
        Ok((self.epsilon.len() - 1) as u32)
    }

    fn epsilon(&mut self, from: u32, to: u32) {
        self.epsilon[from as usize].push(to);
    }

    /// Adds `particle` starting at `from`; returns the state it ends in.
    fn particle(&mut self, particle: &Particle, from: u32) -> Result<u32, String> {
        let copies = particle.max.unwrap_or(particle.min).max(particle.min);
        if copies > MAX_COPIES {
            return Err(format!(
                "maxOccurs/minOccurs above {MAX_COPIES} are not supported"
            ));
        }
        let mut at = from;
        for _ in 0..particle.min {
            at = self.term(&particle.term, at)?;
        }
        match particle.max {
            None => {
                // A loop: the term's end comes back to try it again, or leaves.
                let (again, exit) = (self.state()?, self.state()?);
                self.epsilon(at, again);
                let end = self.term(&particle.term, again)?;
                self.epsilon(end, again);
                self.epsilon(again, exit);
                Ok(exit)
            }
            Some(max) => {
                let exit = self.state()?;
                for _ in particle.min..max {
                    self.epsilon(at, exit);
                    at = self.term(&particle.term, at)?;
                }
                self.epsilon(at, exit);
                Ok(exit)
            }
        }
    }

    fn term(&mut self, term: &Term, from: u32) -> Result<u32, String> {
        match term {
            Term::Leaf(leaf) => {
                // A state has one labelled edge; a second leaf from the same state gets its own.
                let from = match self.labelled[from as usize] {
                    Some(_) => {
                        let own = self.state()?;
                        self.epsilon(from, own);
                        own
                    }
                    None => from,
                };
                let to = self.state()?;
                self.labelled[from as usize] = Some((leaf.clone(), to));
                Ok(to)
            }
            Term::Sequence(particles) => {
                let mut at = from;
                for particle in particles {
                    at = self.particle(particle, at)?;
                }
                Ok(at)
            }
            Term::Choice(particles) => {
                let end = self.state()?;
                for particle in particles {
                    let start = self.state()?;
                    self.epsilon(from, start);
                    let branch_end = self.particle(particle, start)?;
                    self.epsilon(branch_end, end);
                }
                Ok(end)
            }
        }
    }

    /// The ε-closure of `states`, sorted, so equal sets are equal vectors.
    fn closure(&self, states: impl IntoIterator<Item = u32>) -> Vec<u32> {
        let mut seen = vec![false; self.epsilon.len()];
        let mut stack: Vec<u32> = states.into_iter().collect();
        let mut closure = Vec::new();
        while let Some(s) = stack.pop() {
            if !std::mem::replace(&mut seen[s as usize], true) {
                closure.push(s);
                stack.extend(&self.epsilon[s as usize]);
            }
        }
        closure.sort_unstable();
        closure
    }

    fn determinize(&self, start: u32, end: u32) -> Result<Automaton, String> {
        let mut ids: FxHashMap<Vec<u32>, u32> = FxHashMap::default();
        let mut sets = vec![self.closure([start])];
        ids.insert(sets[0].clone(), 0);
        let mut states = Vec::new();
        while states.len() < sets.len() {
            let set = &sets[states.len()];
            // Leaves reached from this set, each with the NFA states it leads to.
            let mut moves: Vec<(Leaf, Vec<u32>)> = Vec::new();
            for &s in set {
                if let Some((leaf, to)) = &self.labelled[s as usize] {
                    match moves.iter_mut().find(|(l, _)| l == leaf) {
                        Some((_, targets)) => targets.push(*to),
                        None => moves.push((leaf.clone(), vec![*to])),
                    }
                }
            }
            moves.sort_by_key(|(leaf, _)| matches!(leaf, Leaf::Any(_)));
            let accepting = set.contains(&end);
            let mut edges = Vec::with_capacity(moves.len());
            for (leaf, targets) in moves {
                let target = self.closure(targets);
                let id = match ids.get(&target) {
                    Some(&id) => id,
                    None => {
                        if sets.len() >= MAX_DFA_STATES {
                            return Err("content model too complex".into());
                        }
                        let id = sets.len() as u32;
                        ids.insert(target.clone(), id);
                        sets.push(target);
                        id
                    }
                };
                edges.push((leaf, id));
            }
            states.push(State { accepting, edges });
        }
        Ok(Automaton { states })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Namespaces, Process, Wildcard};

    fn el(id: u32, min: u32, max: Option<u32>) -> Particle {
        Particle {
            term: Term::Leaf(Leaf::Element(id)),
            min,
            max,
        }
    }
    fn seq(min: u32, max: Option<u32>, particles: Vec<Particle>) -> Particle {
        Particle {
            term: Term::Sequence(particles),
            min,
            max,
        }
    }
    fn choice(min: u32, max: Option<u32>, particles: Vec<Particle>) -> Particle {
        Particle {
            term: Term::Choice(particles),
            min,
            max,
        }
    }

    /// Runs `children` (element ids; 100 and up are in another namespace) through the model.
    fn run(model: &Automaton, children: &[u32]) -> bool {
        let mut state = Automaton::START;
        for &child in children {
            let step = model.step(state, |leaf| match leaf {
                Leaf::Element(id) => *id == child,
                Leaf::Any(w) => w.allows(if child >= 100 {
                    "urn:other"
                } else {
                    "urn:this"
                }),
            });
            match step {
                Some((_, next)) => state = next,
                None => return false,
            }
        }
        model.accepts(state)
    }

    fn check(model: &Particle, cases: &[(&[u32], bool)]) {
        let automaton = Automaton::compile(model).unwrap();
        for (children, valid) in cases {
            assert_eq!(run(&automaton, children), *valid, "{children:?}");
        }
    }

    #[test]
    fn sequences_with_optional_and_repeated_particles() {
        // MsgInfo-like: a, b?, c*, d
        let model = seq(
            1,
            Some(1),
            vec![
                el(1, 1, Some(1)),
                el(2, 0, Some(1)),
                el(3, 0, None),
                el(4, 1, Some(1)),
            ],
        );
        check(
            &model,
            &[
                (&[1, 4], true),
                (&[1, 2, 3, 3, 3, 4], true),
                (&[1, 3, 4], true),
                (&[1, 2, 2, 4], false),
                (&[1, 4, 2], false),
                (&[1], false),
                (&[4], false),
                (&[], false),
            ],
        );
    }

    #[test]
    fn nested_choices_and_sequences() {
        // MsgHead: a, (b+ | c+), d?
        let head = seq(
            1,
            Some(1),
            vec![
                el(1, 1, Some(1)),
                choice(1, Some(1), vec![el(2, 1, None), el(3, 1, None)]),
                el(4, 0, Some(1)),
            ],
        );
        check(
            &head,
            &[
                (&[1, 2, 2, 4], true),
                (&[1, 3], true),
                (&[1, 2, 3], false),
                (&[1, 4], false),
            ],
        );
        // OtherReceiver: r, (o? | (p? | q?)) — an empty choice branch makes the whole choice optional.
        let other = seq(
            1,
            Some(1),
            vec![
                el(1, 1, Some(1)),
                choice(
                    1,
                    Some(1),
                    vec![
                        el(2, 0, Some(1)),
                        choice(1, Some(1), vec![el(3, 0, Some(1)), el(4, 0, Some(1))]),
                    ],
                ),
            ],
        );
        check(
            &other,
            &[
                (&[1], true),
                (&[1, 2], true),
                (&[1, 4], true),
                (&[1, 3, 4], false),
            ],
        );
        // X509Data: (i | j | ##other)+ as a repeated sequence holding a choice.
        let other_ns = Wildcard {
            namespaces: Namespaces::Not("urn:this".into()),
            process: Process::Lax,
        };
        let any = Particle {
            term: Term::Leaf(Leaf::Any(other_ns)),
            min: 1,
            max: Some(1),
        };
        let x509 = seq(
            1,
            None,
            vec![choice(
                1,
                Some(1),
                vec![el(1, 1, Some(1)), el(2, 1, Some(1)), any],
            )],
        );
        check(
            &x509,
            &[
                (&[1], true),
                (&[2, 1, 100, 2], true),
                (&[], false),
                (&[3], false),
            ],
        );
        // DSAKeyValue: (p, q)?, g?, y, j?, (seed, counter)?
        let dsa = seq(
            1,
            Some(1),
            vec![
                seq(0, Some(1), vec![el(1, 1, Some(1)), el(2, 1, Some(1))]),
                el(3, 0, Some(1)),
                el(4, 1, Some(1)),
                el(5, 0, Some(1)),
                seq(0, Some(1), vec![el(6, 1, Some(1)), el(7, 1, Some(1))]),
            ],
        );
        check(
            &dsa,
            &[
                (&[4], true),
                (&[1, 2, 3, 4, 5, 6, 7], true),
                (&[1, 3, 4], false),
                (&[4, 6], false),
            ],
        );
    }

    #[test]
    fn occurrence_ranges_are_unrolled() {
        let model = seq(
            1,
            Some(1),
            vec![
                el(1, 2, Some(3)),
                choice(0, Some(2), vec![el(2, 1, Some(1)), el(3, 1, Some(1))]),
            ],
        );
        check(
            &model,
            &[
                (&[1], false),
                (&[1, 1], true),
                (&[1, 1, 1], true),
                (&[1, 1, 1, 1], false),
                (&[1, 1, 3, 2], true),
                (&[1, 1, 2, 2, 2], false),
            ],
        );
        let unbounded_group = seq(2, None, vec![el(1, 1, Some(1)), el(2, 0, Some(1))]);
        check(
            &unbounded_group,
            &[
                (&[1], false),
                (&[1, 1], true),
                (&[1, 2, 1, 1, 2], true),
                (&[2, 1], false),
            ],
        );
        assert!(Automaton::compile(&el(1, 0, Some(1000))).is_err());
    }

    #[test]
    fn the_shortest_path_names_what_is_missing() {
        let model = Automaton::compile(&seq(
            1,
            Some(1),
            vec![
                el(1, 1, Some(1)),
                el(2, 0, Some(1)),
                el(3, 1, Some(1)),
                el(4, 1, Some(1)),
            ],
        ))
        .unwrap();
        let (_, after_first) = model
            .step(Automaton::START, |l| *l == Leaf::Element(1))
            .unwrap();
        // 4 arrives where 2 or 3 was expected: 3 is missing (2 is optional).
        let wants_4 = |s| model.step(s, |l| *l == Leaf::Element(4)).is_some();
        let (missing, at) = model.shortest_path(after_first, wants_4).unwrap();
        assert_eq!(missing, vec![&Leaf::Element(3)]);
        assert!(wants_4(at));
        let (missing, _) = model
            .shortest_path(after_first, |s| model.accepts(s))
            .unwrap();
        assert_eq!(missing, vec![&Leaf::Element(3), &Leaf::Element(4)]);
        let expected: Vec<_> = model.expected(after_first).collect();
        assert_eq!(expected, vec![&Leaf::Element(2), &Leaf::Element(3)]);
        assert!(
            model
                .shortest_path(after_first, |s| model
                    .step(s, |l| *l == Leaf::Element(1))
                    .is_some())
                .is_none()
        );
    }
}
