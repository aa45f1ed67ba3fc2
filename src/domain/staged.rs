//! Keys a person creates. Anthropic, Stripe and GitHub have no API that creates an API key, so a person
//! creates one in the provider's console and stages it (`keyrot stage NAME`); the next rotation adopts
//! it. Where the provider has no API that revokes the old key either (Stripe), or keyrot cannot name it
//! to the API, the revocation is a task for a person: reminded once a day until `keyrot revoked NAME`
//! records it (docs/steps.md, "Staged keys").

use super::secret::Provider;

/// Where and how a person creates and revokes a provider's keys: the text of `key_needed` alerts,
/// of refusals that ask for a staged key, and of revocation tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Console {
    /// The page where a key is created.
    pub create_url: &'static str,
    /// What to do there, as a sentence.
    pub create_steps: &'static str,
    /// The page where a key is revoked.
    pub revoke_url: &'static str,
    /// What to do there, as a sentence; the alert names the key by its hint after it.
    pub revoke_steps: &'static str,
    /// How keyrot revokes an old key itself, when it can.
    pub revoked_by: Revoker,
}

/// Who ends an old key's life after its grace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoker {
    /// keyrot, through the provider's API, by the key's id (Anthropic) or by its value (GitHub).
    Api,
    /// A person in the console: the provider has no API for it (Stripe).
    Person,
}

const ANTHROPIC: Console = Console {
    create_url: "https://console.anthropic.com/settings/keys",
    create_steps: "choose Create Key in the workspace of the current key, name it after the secret, and copy the key (the Console shows it once)",
    revoke_url: "https://console.anthropic.com/settings/keys",
    revoke_steps: "find the key by its hint and choose Disable (disabling can be undone; archive it later)",
    revoked_by: Revoker::Api,
};

const STRIPE: Console = Console {
    create_url: "https://dashboard.stripe.com/apikeys",
    create_steps: "in the account and mode (live or test) of the current key, choose Create secret key (or Create restricted key with the current key's permissions) and copy the key (the Dashboard shows it once); do not roll the current key, which would expire it on Stripe's schedule rather than after keyrot's grace",
    revoke_url: "https://dashboard.stripe.com/apikeys",
    revoke_steps: "find the key by its hint, open its menu and choose Delete key (for the standard secret key, Roll key with the expiry set to now)",
    revoked_by: Revoker::Person,
};

const GITHUB: Console = Console {
    create_url: "https://github.com/settings/personal-access-tokens",
    create_steps: "signed in as the current token's user, generate a token of the same kind (fine-grained or classic) with the same resource owner and the same permissions or scopes, and copy it (GitHub shows it once)",
    revoke_url: "https://github.com/settings/personal-access-tokens",
    revoke_steps: "find the token by its hint (classic tokens are under Tokens (classic)) and choose Delete",
    revoked_by: Revoker::Api,
};

const ANTHROPIC_ADMIN: Console = Console {
    create_url: "https://console.anthropic.com/settings/admin-keys",
    create_steps: "as an organisation admin, choose Create Admin Key, name it after the secret, and copy the key (the Console shows it once)",
    revoke_url: "https://console.anthropic.com/settings/admin-keys",
    revoke_steps: "find the admin key by its hint and choose Delete",
    revoked_by: Revoker::Person,
};

const VERCEL_TOKEN: Console = Console {
    create_url: "https://vercel.com/account/settings/tokens",
    create_steps: "signed in as the current token's user, choose Create Token with the same scope (the team keyrot deploys to) and an expiration past the rotation schedule and grace, and copy the token (Vercel shows it once)",
    revoke_url: "https://vercel.com/account/settings/tokens",
    revoke_steps: "find the old token by its name and creation date and choose Delete",
    revoked_by: Revoker::Person,
};

const RENDER_TOKEN: Console = Console {
    create_url: "https://dashboard.render.com/u/settings#api-keys",
    create_steps: "signed in as a member of the current key's workspace, choose Create API Key, name it after the secret, and copy the key (Render shows it once)",
    revoke_url: "https://dashboard.render.com/u/settings#api-keys",
    revoke_steps: "find the old API key by its name and creation date and choose Delete",
    revoked_by: Revoker::Person,
};

impl Provider {
    /// The console of a provider whose keys a person creates; `None` where keyrot mints them.
    pub fn console(self) -> Option<&'static Console> {
        match self {
            Provider::Anthropic => Some(&ANTHROPIC),
            Provider::Stripe => Some(&STRIPE),
            Provider::GitHub => Some(&GITHUB),
            Provider::AnthropicAdmin => Some(&ANTHROPIC_ADMIN),
            Provider::VercelToken => Some(&VERCEL_TOKEN),
            Provider::RenderToken => Some(&RENDER_TOKEN),
            Provider::OpenAi | Provider::Generic | Provider::Postgres | Provider::OpenAiAdmin => {
                None
            }
        }
    }

    /// Whether a rotation adopts a key a person staged instead of minting one.
    pub fn is_staged(self) -> bool {
        self.console().is_some()
    }

    /// The provider's name as people write it.
    pub fn title(self) -> &'static str {
        match self {
            Provider::OpenAi => "OpenAI",
            Provider::Anthropic => "Anthropic",
            Provider::Generic => "generic",
            Provider::Postgres => "PostgreSQL",
            Provider::Stripe => "Stripe",
            Provider::GitHub => "GitHub",
            Provider::OpenAiAdmin => "OpenAI admin",
            Provider::AnthropicAdmin => "Anthropic admin",
            Provider::VercelToken => "Vercel",
            Provider::RenderToken => "Render",
        }
    }
}

impl Console {
    /// The fix of a rotation that needs a staged key: create it, stage it, start the rotation again.
    pub fn stage_fix(&self, provider: Provider, secret: &str) -> String {
        format!(
            "create a key at {} ({}: {}), stage it with `keyrot stage {secret}` (key on stdin), then start the rotation again with `aws secretsmanager rotate-secret --secret-id {secret}`",
            self.create_url,
            provider.title(),
            self.create_steps,
        )
    }

    /// What a person does to revoke the old key `hint` of `secret`, and how they record it.
    pub fn revoke_task(&self, secret: &str, hint: &str, version_id: &str) -> String {
        format!(
            "Open {} and revoke the old key {hint}: {}. Then record it with `keyrot revoked {secret} --version {version_id}`, which checks that the key is refused.",
            self.revoke_url, self.revoke_steps,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_providers_without_a_minting_api_are_staged() {
        let staged: Vec<Provider> = Provider::ALL
            .into_iter()
            .filter(|p| p.is_staged())
            .collect();
        assert_eq!(
            staged,
            [
                Provider::Anthropic,
                Provider::Stripe,
                Provider::GitHub,
                Provider::AnthropicAdmin,
                Provider::VercelToken,
                Provider::RenderToken
            ]
        );
        assert_eq!(
            Provider::Stripe.console().map(|c| c.revoked_by),
            Some(Revoker::Person)
        );
    }

    #[test]
    fn a_revocation_task_names_the_page_the_key_and_the_command() {
        let task = STRIPE.revoke_task("prod/stripe", "...9xQa", "v-1");
        assert!(
            task.contains("https://dashboard.stripe.com/apikeys"),
            "{task}"
        );
        assert!(task.contains("...9xQa"), "{task}");
        assert!(
            task.contains("keyrot revoked prod/stripe --version v-1"),
            "{task}"
        );
    }
}
