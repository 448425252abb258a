// adhRollout: deploy the site batch by batch behind its load balancers (docs/rollout.md): each
// batch leaves them, drains, is deployed and verified, and comes back healthy before the next.
//
//   adhRollout(site: 'web', revision: rev, command: 'cap "$SITE" deploy')
//   adhRollout(site: 'web', action: 'abort')   // put back what this build's rollout took out
//
//   command     the deploy command, run per batch by `sh -c` with SSH_CONFIG, CAP_CONFIG,
//               KNOWN_HOSTS and REVISION set to that batch's (default $DEPLOY_COMMAND)
//   holder      who rolls (default $BUILD_URL)
// Runs under adhLock. The per-host report (outDir/rollout.json) is archived however it ends; a
// failed or aborted rollout puts back this build's healthy hosts (failed ones stay out for a
// person) and fails the step. It records nothing: record with adhRevision once verified.
def call(Map opts) {
    Map values = [ADH_SITE: opts.site ?: '', ADH_REVISION: opts.revision ?: '',
                  ADH_HOLDER: opts.holder ?: env.BUILD_URL ?: '', ADH_COMMAND: opts.command ?: env.DEPLOY_COMMAND ?: '']
    if (opts.action == 'abort') {
        return adhRun(opts, values, '''
            "$ADH_HELPER" rollout abort -c "$ADH_CONFIG" --site="$ADH_SITE" --holder="$ADH_HOLDER" ||
                echo "rollout abort failed: see aws-deploy-helper rollout status"
        ''', [what: 'adhRollout abort'])
    }
    String out = opts.outDir ?: 'deploy-out'
    adhLock(opts) {
        try {
            adhRun(opts, values, '''
                out=$PWD/$ADH_OUT
                "$ADH_HELPER" rollout -c "$ADH_CONFIG" --site="$ADH_SITE" --revision="$ADH_REVISION" \\
                    --holder="$ADH_HOLDER" --out-dir="$out/rollout" --known-hosts="$out/known_hosts" \\
                    --report="$out/rollout.json" -- sh -c "$ADH_COMMAND"
            ''', [what: 'adhRollout'])
        } catch (failure) {  // also an abort: put back what it took out before the build ends
            adhRollout(opts + [action: 'abort'])
            throw failure
        } finally {
            archiveArtifacts(artifacts: "${out}/rollout.json", allowEmptyArchive: true)
        }
    }
}
