//! Fault proxies in front of moto and of the simulator, sharing one [`FaultPlan`], so that every
//! request a rotation makes is numbered and any one of them can be made to fail.

use std::sync::Arc;

use keyrot::config::Config;
use keyrot_sim::{FaultPlan, FaultProxy};

use super::World;

pub struct Proxies {
    pub plan: Arc<FaultPlan>,
    pub moto: FaultProxy,
    pub sim: FaultProxy,
}

impl Proxies {
    pub async fn start(world: &World) -> Proxies {
        let plan = FaultPlan::new();
        let endpoint = std::env::var("AWS_ENDPOINT_URL").expect("moto's endpoint");
        let moto = FaultProxy::start("moto", &endpoint, plan.clone())
            .await
            .expect("moto proxy");
        let sim = FaultProxy::start("sim", &world.sim.base_url(), plan.clone())
            .await
            .expect("simulator proxy");
        Proxies { plan, moto, sim }
    }

    /// The world's configuration with every provider's base URL on the simulator's proxy.
    pub fn config(&self, world: &World) -> Config {
        let sim = self.sim.url();
        Config {
            openai_base_url: format!("{sim}/v1"),
            anthropic_base_url: sim.clone(),
            vercel_base_url: sim.clone(),
            render_base_url: sim,
            ..world.config.clone()
        }
    }
}
