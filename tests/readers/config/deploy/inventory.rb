# One Capistrano server per host alias in the servers file named by CAP_CONFIG.
# The alias is the hostname: net-ssh resolves it through the generated ssh config.
require "yaml"

set :aws_sites, YAML.load_file(ENV.fetch("CAP_CONFIG"))["sites"]

fetch(:aws_sites).each do |site, aliases|
  aliases.each do |host_alias|
    server host_alias, roles: %w{app web}, site: site
  end
end
