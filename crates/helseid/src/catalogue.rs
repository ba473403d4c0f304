//! The network's APIs as HelseID knows them: each API is an audience with its scopes, and the
//! claim names HelseID puts in tokens. A token's `aud` is the set of APIs its scopes belong to.

/// An API protected by HelseID.
#[derive(Debug)]
pub struct Api {
    pub audience: &'static str,
    pub name: &'static str,
    pub scopes: &'static [&'static str],
}

pub const MSH: Api = Api {
    audience: "nhn:msh",
    name: "Meldingstjener (message exchange)",
    scopes: &["nhn:msh/api"],
};
pub const MELDINGSTELLER: Api = Api {
    audience: "nhn:meldingsteller",
    name: "Meldingsteller (message counts for operators)",
    scopes: &["nhn:meldingsteller/read"],
};
pub const ADRESSEREGISTERET: Api = Api {
    audience: "nhn:adresseregisteret",
    name: "Adresseregisteret (address register)",
    scopes: &[
        "nhn:adresseregisteret/read",
        "nhn:adresseregisteret/write",
        "nhn:adresseregisteret/admin",
    ],
};
pub const PERSONTJENESTEN: Api = Api {
    audience: "nhn:persontjenesten",
    name: "Persontjenesten (population register)",
    scopes: &[
        "nhn:persontjenesten/ReadNoLegalBasis",
        "nhn:persontjenesten/ReadWithLegalBasis",
    ],
};
pub const HPR: Api = Api {
    audience: "nhn:hpr",
    name: "Helsepersonellregisteret (health personnel register)",
    scopes: &["nhn:hpr/read"],
};
pub const FASTLEGEREGISTERET: Api = Api {
    audience: "nhn:fastlegeregisteret",
    name: "Fastlegeregisteret (GP register)",
    scopes: &[
        "nhn:fastlegeregisteret/read",
        "nhn:fastlegeregisteret/write",
    ],
};
pub const KJERNEJOURNAL: Api = Api {
    audience: "nhn:kjernejournal",
    name: "Kjernejournal (summary care record)",
    scopes: &[
        "nhn:kjernejournal/api",
        "nhn:kjernejournal/ingest",
        "nhn:kjernejournal/operator",
    ],
};
pub const ERESEPT: Api = Api {
    audience: "nhn:eresept",
    name: "E-resept (e-prescriptions)",
    scopes: &["nhn:eresept/api"],
};
pub const PROVESVAR: Api = Api {
    audience: "nhn:provesvar",
    name: "Prøvesvar (lab results)",
    scopes: &["nhn:provesvar/api"],
};

pub const APIS: &[&Api] = &[
    &MSH,
    &MELDINGSTELLER,
    &ADRESSEREGISTERET,
    &PERSONTJENESTEN,
    &HPR,
    &FASTLEGEREGISTERET,
    &KJERNEJOURNAL,
    &ERESEPT,
    &PROVESVAR,
];

/// Scopes no member organisation gets by default: operating the network, moving a citizen to
/// another GP (the citizen portal's and the register's own case handling), reporting into
/// Kjernejournal (the national sources: prescriptions, patient administration, vaccinations,
/// document sharing) and watching its snooping alerts.
pub const RESTRICTED_SCOPES: &[&str] = &[
    "nhn:adresseregisteret/admin",
    "nhn:meldingsteller/read",
    "nhn:fastlegeregisteret/write",
    "nhn:kjernejournal/ingest",
    "nhn:kjernejournal/operator",
];

/// The scopes every member organisation's system client gets.
pub fn member_scopes() -> impl Iterator<Item = &'static str> {
    APIS.iter()
        .flat_map(|api| api.scopes.iter().copied())
        .filter(|s| !RESTRICTED_SCOPES.contains(s))
}

pub const OPENID: &str = "openid";
pub const SCOPE_PID: &str = "helseid://scopes/identity/pid";
pub const SCOPE_SECURITY_LEVEL: &str = "helseid://scopes/identity/security_level";
pub const SCOPE_HPR_NUMBER: &str = "helseid://scopes/hpr/hpr_number";

/// Scopes about the signed-in person (ID token and userinfo), not about an API.
pub const IDENTITY_SCOPES: &[&str] = &[
    OPENID,
    "profile",
    SCOPE_PID,
    SCOPE_SECURITY_LEVEL,
    SCOPE_HPR_NUMBER,
];

pub const CLAIM_ORGNR_PARENT: &str = "helseid://claims/client/claims/orgnr_parent";
pub const CLAIM_ORGNR_CHILD: &str = "helseid://claims/client/claims/orgnr_child";
pub const CLAIM_PID: &str = "helseid://claims/identity/pid";
pub const CLAIM_SECURITY_LEVEL: &str = "helseid://claims/identity/security_level";
pub const CLAIM_HPR_NUMBER: &str = "helseid://claims/hpr/hpr_number";

pub const CLAIMS: &[&str] = &[
    "sub",
    "name",
    "client_id",
    "scope",
    CLAIM_ORGNR_PARENT,
    CLAIM_ORGNR_CHILD,
    CLAIM_PID,
    CLAIM_SECURITY_LEVEL,
    CLAIM_HPR_NUMBER,
];

/// The API a scope belongs to.
pub fn api_of(scope: &str) -> Option<&'static Api> {
    APIS.iter().copied().find(|api| api.scopes.contains(&scope))
}

pub fn is_identity_scope(scope: &str) -> bool {
    IDENTITY_SCOPES.contains(&scope)
}

/// Whether HelseID knows `scope`: an API's or an identity scope.
pub fn is_known(scope: &str) -> bool {
    api_of(scope).is_some() || is_identity_scope(scope)
}

/// Every scope HelseID knows, for discovery.
pub fn all_scopes() -> Vec<&'static str> {
    IDENTITY_SCOPES
        .iter()
        .copied()
        .chain(APIS.iter().flat_map(|api| api.scopes.iter().copied()))
        .collect()
}

/// The audiences of `scopes`, each once, in catalogue order.
pub fn audiences_of<'a>(scopes: impl IntoIterator<Item = &'a str> + Clone) -> Vec<String> {
    APIS.iter()
        .filter(|api| scopes.clone().into_iter().any(|s| api.scopes.contains(&s)))
        .map(|api| api.audience.to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_read_the_registers_but_neither_operate_nor_move_citizens() {
        let scopes: Vec<&str> = member_scopes().collect();
        assert!(scopes.contains(&"nhn:persontjenesten/ReadNoLegalBasis"));
        assert!(scopes.contains(&"nhn:fastlegeregisteret/read"));
        for restricted in RESTRICTED_SCOPES {
            assert!(!scopes.contains(restricted), "{restricted}");
        }
    }
}
