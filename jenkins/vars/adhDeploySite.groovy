// adhDeploySite: a whole deploy of one site, the way our Jenkinsfile does it, in one step for a
// pipeline of your own; returns the revision deployed.
//
//   adhDeploySite(site: 'web', revision: env.GIT_COMMIT, command: 'cap "$SITE" deploy')
//
//   site, revision, instanceIds, lifecycleActions, rollback, dryRun   as adhResolve
//   command        the deploy command (adhDeploy; default $DEPLOY_COMMAND)
//   verifyCommand  a check after the deploy, run by `sh -c` with REVISION set (default
//                  $VERIFY_COMMAND; none when empty)
// Under the site's lock throughout (adhLock): resolve, then for a full deploy hold the fleet
// (adhFleetHold, always released), write the inventory, deploy (a rollout when configured),
// verify, and record the revision; a canary, scale-up or dry run records nothing.
def call(Map opts) {
    boolean full = !(opts.lifecycleActions || opts.instanceIds || opts.dryRun)
    String verify = opts.verifyCommand ?: env.VERIFY_COMMAND ?: ''
    return adhLock(opts) {
        String revision = adhResolve(opts)
        Closure rest = {
            adhInventory(opts)
            if (!opts.dryRun) {
                adhDeploy(opts + [revision: revision, full: full])
                if (verify.trim()) {
                    adhRun(opts, [ADH_VERIFY: verify, ADH_REVISION: revision],
                           'REVISION=$ADH_REVISION; export REVISION; sh -c "$ADH_VERIFY"', [what: 'verify'])
                }
            }
            if (full) {
                adhRevision(opts + [action: 'record', fromOutDir: true])
            }
        }
        if (full) {
            adhFleetHold(opts) { rest() }
        } else {
            rest()
        }
        return revision
    }
}
