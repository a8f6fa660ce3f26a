import type { Command } from 'commander';
import { ConfigError, loadConfig, renderDefaultsYaml } from '../config/load-config.js';

export function registerConfig(program: Command): void {
  program
    .command('config')
    .description('Show the configuration: every setting with its default, or the effective values of a file')
    .option(
      '-c, --config <file>',
      'config file to check and print (default: voiceguard.yaml or /etc/voiceguard/voiceguard.yaml)',
    )
    .option('--print-defaults', 'print every setting with its default value and description as YAML')
    .action((opts: { config?: string; printDefaults?: boolean }) => {
      if (opts.printDefaults) {
        process.stdout.write(renderDefaultsYaml());
        return;
      }
      try {
        const { config, file } = loadConfig(opts.config);
        process.stderr.write(`config: ${file ?? '(built-in defaults)'} is valid\n`);
        process.stdout.write(JSON.stringify(config, null, 2) + '\n');
      } catch (err) {
        if (err instanceof ConfigError) {
          process.stderr.write(`${err.message}\n`);
          process.exitCode = 2;
          return;
        }
        throw err;
      }
    });
}
