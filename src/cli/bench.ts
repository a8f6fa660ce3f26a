import type { Command } from 'commander';
import { mainDetectBench } from '../../bench/detect.js';

export function registerBench(program: Command): void {
  program
    .command('bench')
    .description(
      'Measure how many calls this machine can analyse: detector windows per second per core, ' +
        'real-time factor, per-window latency, and concurrent streams per core with batching on ' +
        'and off, against a plain ONNX session baseline. Prints JSON, then a table. About a minute.',
    )
    .option('--model <file.onnx>', 'ONNX model to measure (its metadata is the .json next to it)')
    .option('--budget-s <seconds>', 'approximate run time budget', '45')
    .action(async (opts: { model?: string; budgetS: string }) => {
      const argv = ['--budget-s', opts.budgetS];
      if (opts.model) argv.push('--model', opts.model);
      await mainDetectBench(argv);
    });
}
