// adhFleetHold: hold the site's Auto Scaling groups still while the body runs, and always let go.
//
//   adhFleetHold(site: 'web') { ... a full deploy ... }
//
// No scale-in, health replacement, rebalance or instance refresh removes a host until the body
// ends, however it ends (failure, abort: `finally`). Scale-out still happens; its instances wait
// for their own builds. The hold is this build's (holder: default $BUILD_URL) and expires by
// itself (lifecycle.hold.ttl_s) if the agent dies; the consumer releases an expired one. A site
// without a group holds nothing. A failed release does not hide the body's own result.
def call(Map opts, Closure body) {
    adhFleet(opts + [action: 'hold'])
    try {
        return body()
    } finally {
        adhFleet(opts + [action: 'release'])
    }
}
