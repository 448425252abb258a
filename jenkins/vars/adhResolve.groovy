// adhResolve: which revision this build deploys, by the kind of build its parameters make; the
// revision is returned and written to outDir/revision (outDir/rollback_from for a rollback), so a
// declarative pipeline's later stages read it without a script block.
//
//   adhResolve(site: params.SITE, revision: params.REVISION, instanceIds: params.INSTANCE_IDS,
//              lifecycleActions: params.LIFECYCLE_ACTIONS, rollback: params.ROLLBACK, dryRun: params.DRY_RUN)
//
//   full deploy  no instanceIds, no lifecycleActions: revision, checked; empty = the checked-out HEAD
//   canary       instanceIds: the same, and nothing is recorded later
//   scale-up     lifecycleActions (needs instanceIds): the revision the site runs, read now
//   rollback     the revision the site ran before (revision: to that one, if the site ran it);
//                the whole site only, not a dry run
// Parameter mistakes fail with one line before the helper runs.
def call(Map opts) {
    Map values = [ADH_SITE: opts.site ?: '', ADH_REVISION: opts.revision ?: '',
                  ADH_INSTANCE_IDS: opts.instanceIds ?: '', ADH_LIFECYCLE_ACTIONS: opts.lifecycleActions ?: '',
                  ADH_ROLLBACK: opts.rollback ? 'true' : 'false', ADH_DRY_RUN: opts.dryRun ? 'true' : 'false']
    adhRun(opts, values, '''
        mkdir -p "$ADH_OUT"
        rm -f "$ADH_OUT/revision" "$ADH_OUT/rollback_from" "$ADH_OUT/ssh_config" "$ADH_OUT/cap.yml"
        if [ -z "$ADH_SITE" ]; then
            echo "SITE is empty: give the site to deploy (a push deploys SITE's default)" >&2
            exit 2
        fi
        # Only commas and spaces would be "every instance" to the helper but a canary here (no
        # fleet hold, no recorded revision): refused by both.
        case "$ADH_INSTANCE_IDS" in
            *[!,[:space:]]*|'') ;;
            *) echo "INSTANCE_IDS names no instance: leave it empty to deploy every instance" >&2
               exit 2 ;;
        esac
        if [ -n "$ADH_LIFECYCLE_ACTIONS" ] && [ -z "$ADH_INSTANCE_IDS" ]; then
            echo "a scale-up build (LIFECYCLE_ACTIONS set) needs INSTANCE_IDS" >&2
            exit 2
        fi
        # The helper's rule (revision resolve): REVISION when given, checked; for a scale-up build
        # the revision the site runs; else the checked-out branch head. A rollback: the revision
        # the site ran before, and the one it leaves, so the record says so and a second rollback
        # goes further back.
        set -- -c "$ADH_CONFIG" --site="$ADH_SITE"
        if [ "$ADH_ROLLBACK" = true ]; then
            if [ -n "$ADH_LIFECYCLE_ACTIONS$ADH_INSTANCE_IDS" ] || [ "$ADH_DRY_RUN" = true ]; then
                echo "ROLLBACK rolls the whole site back: no INSTANCE_IDS, LIFECYCLE_ACTIONS or DRY_RUN" >&2
                exit 2
            fi
            rev=$("$ADH_HELPER" revision previous "$@" --revision="$ADH_REVISION")
            "$ADH_HELPER" revision get "$@" > "$ADH_OUT/rollback_from"
        elif [ -n "$ADH_LIFECYCLE_ACTIONS" ]; then
            rev=$("$ADH_HELPER" revision resolve "$@" --scale-up --revision="$ADH_REVISION")
        else
            rev=$("$ADH_HELPER" revision resolve "$@" --revision="${ADH_REVISION:-$(git rev-parse HEAD)}")
        fi
        printf '%s\\n' "$rev" > "$ADH_OUT/revision"
        echo "revision: $rev"
    ''', [what: 'adhResolve'])
    return readFile("${opts.outDir ?: 'deploy-out'}/revision").trim()
}
