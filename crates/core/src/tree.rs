//! The supervisor tree as shown by `dynamodctl tree`.

use dynamod_proto::{NodeKind, TreeNode};

use crate::{Core, SupId};

impl Core {
    /// The tree rooted at `root`: each supervisor's services, then its child supervisors.
    pub fn tree(&self) -> TreeNode {
        self.tree_of(SupId(0))
    }

    fn tree_of(&self, id: SupId) -> TreeNode {
        let sup = self.supervisor(id);
        let mut children: Vec<TreeNode> = sup.child_sups.iter().map(|c| self.tree_of(*c)).collect();
        children.extend(sup.children.iter().map(|&svc| {
            let s = self.service(svc);
            TreeNode {
                name: s.name.clone(),
                node: NodeKind::Service {
                    state: s.state(),
                    pid: s.pid,
                },
                children: Vec::new(),
            }
        }));
        TreeNode {
            name: sup.cfg.name.clone(),
            node: NodeKind::Supervisor {
                strategy: sup.cfg.strategy.as_str().to_owned(),
                state: if sup.failed { "failed" } else { "running" }.to_owned(),
            },
            children,
        }
    }
}
