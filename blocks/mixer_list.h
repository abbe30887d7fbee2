/* The registry of token mixers: one line per mixer, in the order commands
 * list them. MIXER(name) names the `const mixer_ops mixer_<name>` that
 * blocks/<name>.c defines. Adding a mixer is that file family plus one line
 * here (the build picks up every blocks/ source by itself). */
MIXER(dwconv)
MIXER(ssm)
MIXER(ssm_bidir)
MIXER(ssm_2d)
MIXER(attn)
MIXER(attn_causal)
MIXER(identity)
