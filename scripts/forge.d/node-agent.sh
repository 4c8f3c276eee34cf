# Stage "node-agent": stateproof's node agent (images/node-agent), the
# privileged DaemonSet through which the harness acts on the nodes of a
# cluster it reaches only through a kubeconfig (src/cluster/node_agent.rs).
# util-linux for nsenter, procps to find a container's process, curl and jq
# for its one question to the API server. Published like the workload images.

NODE_AGENT_IMAGE=stateproof/node-agent:1
NODE_AGENT_PACKAGES=bash,util-linux,procps,curl,ca-certificates,jq

stage_node_agent() {
  packaged_image node-agent "$NODE_AGENT_IMAGE" "stateproof/node-agent-packages:$DEBIAN_SUITE" \
    "$NODE_AGENT_PACKAGES" "$FORGE_DIR/node-agent.sh"
}
