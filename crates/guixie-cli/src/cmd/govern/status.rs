//! `guixie govern status`: what holds now, for people and (with --json) for machines.

use guixie_govern::proposal::Change;

use crate::output::print_json;
use crate::Context;
use guixie_govern::Instance;

pub fn show(ctx: &Context, inst: &Instance, now: i64) -> anyhow::Result<()> {
    let s = &inst.state;
    let fresh = s.check_fresh(now);
    if ctx.json {
        let proposals: Vec<_> = inst
            .motions
            .values()
            .map(|m| {
                serde_json::json!({
                    "index": m.index,
                    "digest": m.digest,
                    "change": inst.proposals[&m.index].doc.change,
                    "status": m.status.as_str(),
                    "ayes": m.ayes.iter().map(|k| s.member(k).map(|m| m.name.clone())).collect::<Vec<_>>(),
                    "nays": m.nays.iter().map(|k| s.member(k).map(|m| m.name.clone())).collect::<Vec<_>>(),
                })
            })
            .collect();
        print_json(&serde_json::json!({
            "instance": s.doc.instance,
            "governanceVersion": s.doc.version,
            "threshold": s.doc.threshold,
            "members": s.doc.members,
            "expires": s.doc.expires,
            "expired": fresh.is_err(),
            "version": inst.version,
            "extensions": inst.extensions.keys().collect::<Vec<_>>(),
            "trustPolicy": inst.trust_policy,
            "proposals": proposals,
        }))?;
        return Ok(());
    }
    println!(
        "instance {} runs guixie {}; governance version {}: {}",
        s.doc.instance,
        inst.version,
        s.doc.version,
        s.summary()
    );
    match fresh {
        Ok(()) => println!(
            "expires at {} (in {} days)",
            s.doc.expires,
            (s.doc.expires - now) / 86_400
        ),
        Err(e) => println!("EXPIRED: {e}; nothing is proposed, voted or applied until then"),
    }
    for m in inst.motions.values() {
        let what = match &inst.proposals[&m.index].doc.change {
            Change::Upgrade { version, .. } => format!("upgrade to {version}"),
            Change::Membership { .. } => "membership".into(),
            Change::Extension { name, add: Some(_) } => format!("add extension {name}"),
            Change::Extension { name, add: None } => format!("remove extension {name}"),
            Change::TrustPolicy(p) => format!("trust policy {} of {}", p.k, p.builders.len()),
        };
        println!("proposal {}: {what}: {}", m.index, m.summary());
    }
    Ok(())
}
