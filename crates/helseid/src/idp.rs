//! The built-in test identity provider: where BankID would be in production, a plain page that
//! lists synthetic health personnel and citizens to sign in as, at security level 4. It reads
//! the population and health personnel registers of the network's own (synthetic) country.

use helsenett_core::Fodselsnummer;
use helsenett_store::{Store, StoreError, with_pool};

use crate::{login::AuthRequest, tokens::UserClaims};

/// Security level of a test IdP sign-in: as BankID's (high).
pub const SECURITY_LEVEL: &str = "4";
/// People listed on the page, of each kind.
const LISTED: i64 = 25;

/// The person behind `pid`, as a signed-in user; `None` if the population register lacks them.
pub async fn find(store: &Store, pid: &Fodselsnummer) -> Result<Option<UserClaims>, StoreError> {
    let nin = pid.to_string();
    let person = with_pool!(store, pool => sqlx::query_as::<_, (String, String)>(
        "SELECT given_name, family_name FROM person WHERE nin = $1",
    )
    .bind(&nin)
    .fetch_optional(pool)
    .await)?;
    let Some((given, family)) = person else {
        return Ok(None);
    };
    // Only an authorised, unsuspended professional carries an HPR number: services take the
    // claim to mean "may act as health personnel" (decisions.md).
    let hpr = store
        .hpr_by_nin(*pid)
        .await?
        .filter(|entry| entry.authorised_on(helsenett_core::time::today()))
        .map(|entry| entry.personnel.hpr);
    Ok(Some(UserClaims {
        pid: nin,
        security_level: SECURITY_LEVEL.into(),
        hpr_number: hpr.map(|h| h.to_string()),
        name: format!("{given} {family}"),
        auth_time: crate::now(),
    }))
}

/// The login page for the pending request `key`.
pub async fn login_page(
    store: &Store,
    key: &str,
    request: &AuthRequest,
) -> Result<String, StoreError> {
    let personnel = with_pool!(store, pool => sqlx::query_as::<_, (String, String, String, i64)>(
        "SELECT nin, given_name || ' ' || family_name, profession, hpr FROM health_personnel
         ORDER BY hpr LIMIT $1",
    )
    .bind(LISTED)
    .fetch_all(pool)
    .await)?;
    let citizens = with_pool!(store, pool => sqlx::query_as::<_, (String, String)>(
        "SELECT nin, given_name || ' ' || family_name FROM person
         WHERE nin NOT IN (SELECT nin FROM health_personnel) ORDER BY nin LIMIT $1",
    )
    .bind(LISTED)
    .fetch_all(pool)
    .await)?;
    let button = |nin: &str, label: &str| {
        format!(
            "<li><button name=\"pid\" value=\"{}\">{}</button> <code>{}</code></li>\n",
            escape(nin),
            escape(label),
            escape(nin)
        )
    };
    let mut page = head("Sign in — HelseID test identity provider");
    page.push_str(&format!(
        "<h1>HelseID test identity provider</h1>\n<p>Signing in to <b>{}</b> for {}. \
         Every person here is synthetic. Security level {SECURITY_LEVEL}.</p>\n\
         <form method=\"post\" action=\"login\">\n<input type=\"hidden\" name=\"request\" value=\"{}\">\n",
        escape(&request.client_id),
        escape(&request.scopes.join(" ")),
        escape(key)
    ));
    page.push_str("<h2>Health personnel</h2>\n<ul>\n");
    for (nin, name, profession, hpr) in &personnel {
        page.push_str(&button(nin, &format!("{name} ({profession}, HPR {hpr})")));
    }
    page.push_str("</ul>\n<h2>Citizens</h2>\n<ul>\n");
    for (nin, name) in &citizens {
        page.push_str(&button(nin, name));
    }
    page.push_str("</ul>\n</form>\n");
    page.push_str(&format!(
        "<form method=\"post\" action=\"login\"><input type=\"hidden\" name=\"request\" value=\"{}\">\
         <label>Any fødselsnummer <input name=\"pid\" inputmode=\"numeric\" maxlength=\"11\"></label> \
         <button>Sign in</button></form>\n</body></html>\n",
        escape(key)
    ));
    Ok(page)
}

pub fn error_page(message: &str) -> String {
    let mut page = head("HelseID: sign-in failed");
    page.push_str(&format!(
        "<h1>Sign-in failed</h1>\n<p>{}</p>\n</body></html>\n",
        escape(message)
    ));
    page
}

fn head(title: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title></head><body>\n",
        escape(title)
    )
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
