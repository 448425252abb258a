// adhInventory: which instances serve the site now, written where a deploy step reads them.
//
//   def inv = adhInventory(site: 'web')
//   sh 'cap web deploy'   // with SSH_CONFIG etc. from inv, e.g. withEnv(["SSH_CONFIG=${inv.sshConfig}"])
//
//   site         the site (required)
//   instanceIds  only these instances (comma-separated), e.g. a canary or a scale-up's new ones
// Returns [sshConfig:, knownHosts:, capConfig:, ansibleInventory:, json: (absolute paths under
// outDir), hosts: the JSON inventory's hosts of the site (alias, instance_id, address, ...)].
def call(Map opts) {
    adhRun(opts, [ADH_SITE: opts.site ?: '', ADH_INSTANCE_IDS: opts.instanceIds ?: ''], '''
        # Absolute paths: the ssh config names the known_hosts file, and ssh may run anywhere.
        out=$PWD/$ADH_OUT
        mkdir -p "$out"
        set -- -c "$ADH_CONFIG" --site="$ADH_SITE"
        if [ -n "$ADH_INSTANCE_IDS" ]; then
            set -- "$@" --instance-ids="$ADH_INSTANCE_IDS"
        fi
        "$ADH_HELPER" inventory "$@" --ssh-config "$out/ssh_config" --known-hosts "$out/known_hosts" \\
            --cap-config "$out/cap.yml" --ansible-inventory "$out/inventory.yml" --json "$out/inventory.json"
    ''', [what: 'adhInventory'])
    String out = opts.outDir ?: 'deploy-out'
    String root = "${pwd()}/${out}"
    def parsed = new groovy.json.JsonSlurperClassic().parseText(readFile("${out}/inventory.json"))
    return [sshConfig: "${root}/ssh_config".toString(), knownHosts: "${root}/known_hosts".toString(),
            capConfig: "${root}/cap.yml".toString(), ansibleInventory: "${root}/inventory.yml".toString(),
            json: "${root}/inventory.json".toString(), hosts: parsed.sites[opts.site] ?: []]
}
