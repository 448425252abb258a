# What every stage shares. A stage is a site of aws-deploy-helper's config: `cap web deploy`
# deploys the hosts listed under `web` in the servers file that the Jenkinsfile's Inventory stage
# writes (CAP_CONFIG), connecting through the ssh config written beside it (SSH_CONFIG).
require "yaml"

set :application, "app"
# The tests hand in a file:// repository; your app names its own, e.g. "git@github.com:you/app.git".
set :repo_url, ENV.fetch("REPO_URL")
# What to deploy: a branch, tag or commit, resolved by the Jenkinsfile (its REVISION parameter,
# or the site's recorded revision for a scale-up build). REVISION on each host holds its commit.
set :branch, ENV.fetch("REVISION")
set :deploy_to, "/srv/app"
set :keep_releases, 3

# net-ssh reads only the helper's ssh config: HostName, User, IdentityFile, ProxyJump, and the
# host-key options (HostKeyAlias, UserKnownHostsFile, StrictHostKeyChecking accept-new, which
# net-ssh 7 turns into verify_host_key: :accept_new). Nothing here overrides host-key checking.
set :ssh_options, config: ENV.fetch("SSH_CONFIG")

# git on the hosts: no password prompt, and ssh (for an ssh repository URL) in batch mode, which
# refuses an unknown or changed host key instead of asking.
set :git_environmental_variables, {
  git_askpass: "/bin/echo",
  git_ssh_command: "ssh -o BatchMode=yes",
}

# One server per host alias of this stage's site. The alias is the ssh Host name: net-ssh resolves
# it through SSH_CONFIG, and known_hosts keys each host by it (HostKeyAlias). A host's roles are
# its site's `roles` plus its `roles_from_tag` tag's values; a host without any gets app and web.
servers = YAML.safe_load(File.read(ENV.fetch("CAP_CONFIG"))) || {}
sites = servers["sites"] || {}
host_roles = servers["roles"] || {}
site = fetch(:stage).to_s
abort "#{ENV['CAP_CONFIG']}: no site #{site.inspect} (sites: #{sites.keys.join(', ')})" unless sites.key?(site)
sites.fetch(site).each do |host_alias|
  server host_alias, roles: host_roles.fetch(host_alias, %w[app web])
end
