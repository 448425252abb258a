// adhDeploy: run the deploy command on the hosts adhInventory wrote; a full deploy of a site with
// a rollout: section rolls through it batch by batch instead (adhRollout).
//
//   adhDeploy(site: 'web', full: true, command: 'cap "$SITE" deploy')
//
//   revision  what to deploy (default: outDir/revision, as adhResolve wrote it)
//   full      every instance of the site, for real (rollout applies; canaries and scale-ups never roll)
//   command   run by `sh -c` with SITE, SSH_CONFIG, CAP_CONFIG, KNOWN_HOSTS and REVISION set
//             (default $DEPLOY_COMMAND)
// Runs under adhLock.
def call(Map opts) {
    String out = opts.outDir ?: 'deploy-out'
    String revision = opts.revision ?: readFile("${out}/revision").trim()
    Map values = [ADH_SITE: opts.site ?: '', ADH_REVISION: revision, ADH_COMMAND: opts.command ?: env.DEPLOY_COMMAND ?: '']
    adhLock(opts) {
        String rolls = opts.full ? adhRun(opts, values,
            '"$ADH_HELPER" rollout plan --configured -c "$ADH_CONFIG" --site="$ADH_SITE"',
            [stdout: true, what: 'adhDeploy']) : 'false'
        if (rolls == 'true') {
            adhRollout(opts + [revision: revision])
        } else {
            adhRun(opts, values, '''
                SITE=$ADH_SITE
                SSH_CONFIG=$PWD/$ADH_OUT/ssh_config
                CAP_CONFIG=$PWD/$ADH_OUT/cap.yml
                KNOWN_HOSTS=$PWD/$ADH_OUT/known_hosts
                REVISION=$ADH_REVISION
                export SITE SSH_CONFIG CAP_CONFIG KNOWN_HOSTS REVISION
                sh -c "$ADH_COMMAND"
            ''', [what: 'adhDeploy'])
        }
    }
}
