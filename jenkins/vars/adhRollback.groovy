// adhRollback: roll the site back to the revision it ran before, batch by batch (a rollout of
// that revision), and record it when every host runs it.
//
//   adhRollback(site: 'web')                 // the previous good revision
//   adhRollback(site: 'web', to: 'v41')      // a revision the site ran
//
//   command  the deploy command, as adhRollout's (default $DEPLOY_COMMAND)
// Runs under adhLock; the report (outDir/rollback.json) is archived however it ends.
def call(Map opts) {
    Map values = [ADH_SITE: opts.site ?: '', ADH_TO: opts.to ?: '', ADH_HOLDER: opts.holder ?: env.BUILD_URL ?: '',
                  ADH_COMMAND: opts.command ?: env.DEPLOY_COMMAND ?: '']
    String out = opts.outDir ?: 'deploy-out'
    adhLock(opts) {
        try {
            adhRun(opts, values, '''
                out=$PWD/$ADH_OUT
                set -- -c "$ADH_CONFIG" --site="$ADH_SITE" --holder="$ADH_HOLDER"
                if [ -n "$ADH_TO" ]; then
                    set -- "$@" --to="$ADH_TO"
                fi
                "$ADH_HELPER" rollback "$@" --out-dir="$out/rollback" --known-hosts="$out/known_hosts" \\
                    --report="$out/rollback.json" -- sh -c "$ADH_COMMAND"
            ''', [what: 'adhRollback'])
        } catch (failure) {
            adhRollout(opts + [action: 'abort'])
            throw failure
        } finally {
            archiveArtifacts(artifacts: "${out}/rollback.json", allowEmptyArchive: true)
        }
    }
}
